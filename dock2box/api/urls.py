from rest_framework.routers import SimpleRouter

from dock2box.api import views

router = SimpleRouter()
router.register("history", views.HistoryViewSet)

urlpatterns = router.urls
