"""The engine for operator templates (kickstart, preseed, cloud-init): no HTML escaping, quoting filters, no files.

Machine configs are not HTML: values go in as they are (`'` stays `'`), and the template author quotes each one for
the place it lands with a filter — `sh` (a POSIX shell word), `ks` (a kickstart argument: pykickstart splits command
lines like a shell), `json` (a JSON string, which is also a YAML scalar), `debconf` (a preseed answer: the rest of its
line, so a value holding a line break stops the render). A template cannot read files: `include`,
`extends` and `ssi` are refused when it is saved, and no tag library can be loaded.
"""

import json
import re
from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from django.template import Context, Engine, Library, Template
from django.template.loader_tags import ExtendsNode, IncludeNode

register = Library()


@register.filter(name="sh")
def shell_quote(value: object) -> str:
    """Single-quote for POSIX sh: the only character to escape inside '...' is ' itself."""
    text = ("true" if value else "false") if isinstance(value, bool) else ("" if value is None else str(value))
    return "'" + text.replace("'", "'\\''") + "'"


@register.filter(name="ks")
def kickstart_quote(value: object) -> str:
    """A kickstart command argument: pykickstart splits lines as a POSIX shell does, so it is quoted as one word."""
    return shell_quote(value)


# What YAML does not take raw in a double-quoted scalar: DEL and the C1 controls (U+0085 among them, a YAML line
# break, as U+2028 and U+2029 are), the byte order mark, surrogates and the last two noncharacters of the BMP.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")


@register.filter(name="json")
def json_quote(value: object) -> str:
    """A JSON value (a string, list or number), which YAML reads as the same scalar or sequence. Characters beyond
    ASCII are written as they are: JSON's escape of one beyond U+FFFF is a surrogate pair, which YAML reads as two
    characters; those YAML does not take raw are escaped as \\uXXXX, which both read alike."""
    return _YAML_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", json.dumps(value, ensure_ascii=False))


@register.filter(name="debconf")
def debconf_line(value: object) -> str:
    """A debconf answer is the rest of its line and has no quoting: a value with a line break is refused."""
    text = "" if value is None else str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"a preseed answer cannot hold a line break: {text!r}")
    return text


_engine = Engine(autoescape=False, loaders=[], libraries={}, builtins=["provisioning.builds.templating"])
_FORBIDDEN_NODES = (IncludeNode, ExtendsNode)


def template_compile(content: str) -> Template:
    """Parse an operator template, or raise ValidationError saying what is wrong with it."""
    try:
        template = _engine.from_string(content)
    except Exception as error:  # TemplateSyntaxError, and what Django's parser raises on odd input (a relative include)
        raise ValidationError(f"Template error: {error}") from error
    if any(template.nodelist.get_nodes_by_type(kind) for kind in _FORBIDDEN_NODES):
        raise ValidationError("A template cannot include or extend another template or file.")
    return template


@lru_cache(maxsize=256)
def _template_compiled(content: str) -> Template:
    return template_compile(content)


def template_render(content: str, context: dict[str, Any]) -> str:
    """Render a template with `context`, values unescaped; the last templates compiled are kept per process."""
    return _template_compiled(content).render(Context(context, autoescape=False))
