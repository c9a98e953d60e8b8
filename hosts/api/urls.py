from rest_framework.routers import SimpleRouter

from hosts.api import views

router = SimpleRouter()
router.register("sites", views.SiteViewSet)
router.register("subnets", views.SubnetViewSet)
router.register("hosts", views.HostViewSet)
router.register("interfaces", views.InterfaceViewSet)
router.register("bmcs", views.BmcViewSet)

urlpatterns = router.urls
