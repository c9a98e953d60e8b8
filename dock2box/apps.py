from django.apps import AppConfig


class Dock2BoxConfig(AppConfig):
    name = "dock2box"
    verbose_name = "Dock2Box"
