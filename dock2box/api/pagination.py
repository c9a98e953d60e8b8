from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`, 50 rows by default, at most 1000."""

    max_limit = 1000
