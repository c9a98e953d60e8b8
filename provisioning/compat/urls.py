"""`/api/v1`: the original REST contract, and `/schemas/`."""

from django.urls import path, re_path

from provisioning.compat import views

COLLECTIONS = "hosts|images|hwaddr|subnets|sites"

urlpatterns = [
    path("api/v1/hosts/<str:fqdn>/interfaces", views.host_interfaces, name="v1-host-interfaces"),
    path("api/v1/hosts/<str:fqdn>/interfaces/<str:name>", views.host_interface, name="v1-host-interface"),
    path("api/v1/images/<str:image>/versions", views.image_versions, name="v1-image-versions"),
    path("api/v1/images/<str:image>/versions/<str:version>", views.image_version, name="v1-image-version"),
    re_path(rf"^api/v1/(?P<collection>{COLLECTIONS})$", views.collection, name="v1-collection"),
    re_path(rf"^api/v1/(?P<collection>{COLLECTIONS})/(?P<key>[^/]+)$", views.resource, name="v1-resource"),
    path("schemas/<str:name>.json", views.schema, name="v1-schema"),
]
