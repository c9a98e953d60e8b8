from rest_framework.routers import SimpleRouter

from images.api import views

router = SimpleRouter()
router.register("images", views.ImageViewSet)
router.register("image-versions", views.ImageVersionViewSet)

urlpatterns = router.urls
