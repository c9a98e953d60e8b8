"""The JSON parser of /api/v2: DRF's, with the nesting bound every JSON endpoint keeps."""

from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from dock2box.jsonbody import parse_json


class BoundedJSONParser(JSONParser):
    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return parse_json(stream.read().decode(encoding))
        except ValueError as error:  # UnicodeDecodeError and json's JSONDecodeError are ValueErrors too
            raise ParseError(f"JSON parse error - {error}") from error
