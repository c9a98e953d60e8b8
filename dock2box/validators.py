"""Validation that holds everywhere: admin forms, /api/v2, /api/v1, importers and installer callbacks.

Anything that reaches an iPXE script, a kernel command line or a shell-sourced config is checked here against an
allow-list, so that no stored value can start a second iPXE command or expand an iPXE or shell variable.
"""

import base64
import binascii
import contextlib
import ipaddress
import re
import struct

import netaddr
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z"
SITE_NAME_PATTERN = r"^[a-z][a-z0-9]+\Z"
IFNAME_PATTERN = r"^[a-z][a-z0-9._-]{0,14}\Z"
# Kernel options, menu labels and other free text: letters, digits, space and a few punctuation marks.
# Left out on purpose: $ { } (iPXE variable expansion), | & ; (command chaining), # (comments), quotes,
# backslash and backquote (quoting and substitution in iPXE and shell), and every control character.
SAFE_TEXT_CHARS = "._,:=/+@%~!*()[]^?-"
_SAFE_TEXT_RE = re.compile(r"^[A-Za-z0-9 " + re.escape(SAFE_TEXT_CHARS) + r"]*\Z")
_FQDN_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_MAC_FORMATS = [
    re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}\Z"),
    re.compile(r"^([0-9a-f]{2}-){5}[0-9a-f]{2}\Z"),
    re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}\Z"),
    re.compile(r"^[0-9a-f]{12}\Z"),
]

validate_name = RegexValidator(
    NAME_PATTERN, "Use letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. centos-7.1-x86_64)."
)
validate_site_name = RegexValidator(
    SITE_NAME_PATTERN, "Use lower-case letters and digits, starting with a letter, at least two characters (e.g. ams1)."
)
validate_ifname = RegexValidator(
    IFNAME_PATTERN, "Use lower-case letters, digits, '.', '_' and '-', starting with a letter, at most 15 characters."
)


def normalise_mac(value: str) -> str:
    """Return a MAC address as `aa:bb:cc:dd:ee:ff` (how iPXE prints `${netX/mac}`), or raise ValidationError.

    Accepts `AA:BB:CC:DD:EE:FF`, `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` and `aabbccddeeff`, in any case.
    """
    text = str(value).strip().lower()
    if not any(pattern.match(text) for pattern in _MAC_FORMATS):
        raise ValidationError(
            "'%(value)s' is not a MAC address; write it as aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff "
            "or aabbccddeeff.",
            code="invalid_mac",
            params={"value": value},
        )
    eui = netaddr.EUI(text, version=48, dialect=netaddr.mac_unix_expanded)
    if eui.value == 0 or eui.words[0] & 1:
        raise ValidationError(
            "'%(value)s' is a zero, broadcast or multicast address, not the address of a network card.",
            code="invalid_mac",
            params={"value": value},
        )
    return str(eui)


def normalise_fqdn(value: str) -> str:
    """Return a host name as lower-case RFC 1123 FQDN without a trailing dot, or raise ValidationError."""
    text = str(value).strip().lower().removesuffix(".")
    labels = text.split(".")
    problem = ""
    if len(text) > 253:
        problem = "is longer than 253 characters"
    elif len(labels) < 2:
        problem = "needs a domain (e.g. web01.example.com)"
    elif not all(_FQDN_LABEL_RE.match(label) for label in labels):
        problem = (
            "has a label that is empty, longer than 63 characters, starts or ends with '-', or holds characters "
            "other than letters, digits and '-'"
        )
    elif labels[-1].isdigit():
        problem = "ends in a numeric label, which is not a domain"
    if problem:
        raise ValidationError(
            "'%(value)s' %(problem)s.", code="invalid_fqdn", params={"value": value, "problem": problem}
        )
    return text


def validate_fqdn(value: str) -> None:
    """A host name `normalise_fqdn` accepts (upper case and a trailing dot are normalised away, not refused)."""
    normalise_fqdn(value)


def validate_domain(value: str) -> None:
    """A DNS domain (one label allowed, e.g. `lan`); the site stores it in lower case."""
    labels = value.lower().removesuffix(".").split(".")
    if not value or len(value) > 253 or not all(_FQDN_LABEL_RE.match(label) for label in labels):
        raise ValidationError(
            "'%(value)s' is not a DNS domain (e.g. example.com).",
            code="invalid_domain",
            params={"value": value},
        )


def validate_safe_text(value: str) -> None:
    """Reject characters that could end, chain or expand an iPXE or kernel command line."""
    if _SAFE_TEXT_RE.match(value):  # \Z, not $: a trailing newline must not slip through
        return
    bad = next(ch for ch in value if not _SAFE_TEXT_RE.match(ch))
    shown = repr(bad) if not bad.isprintable() or bad == " " else f"'{bad}'"
    raise ValidationError(
        "Contains %(char)s, which is not allowed in text that reaches an iPXE script or kernel command line. "
        "Allowed: letters, digits, space and %(allowed)s",
        code="unsafe_text",
        params={"char": shown, "allowed": SAFE_TEXT_CHARS},
    )


_URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~%!*()+,=:@/-]*)?\Z")


def validate_url(value: str) -> None:
    """An http(s) URL with no space and no character that quotes, expands or chains (it lands on kernel command lines,
    in iPXE scripts and shell configs): RFC 3986 characters without `$ & ; ' ? #` — no query, no fragment."""
    if not _URL_RE.match(value):
        bad = next((ch for ch in value if ch.isspace() or ch in "$&;'\"`<>{}|^[]\\?#"), None)
        problem = f"contains {bad!r}, which a URL here may not hold" if bad else "is not an http:// or https:// URL"
        raise ValidationError(
            "'%(value)s' %(problem)s (write e.g. http://files.example.com/images/).",
            code="invalid_url",
            params={"value": value, "problem": problem},
        )


def validate_registry(value: str) -> None:
    """A registry as Docker names it: host[:port][/path], without a scheme."""
    if not re.match(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9._/-]+)?\Z", value):
        raise ValidationError(
            "'%(value)s' is not a registry name; write host[:port], e.g. registry.example.com:5000 (no scheme).",
            code="invalid_registry",
            params={"value": value},
        )


def parse_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse a CIDR strictly; the error says the network the operator probably meant."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError:
        pass
    try:
        meant = ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise ValidationError(
            "'%(value)s' is not a network; write it as address/prefix, e.g. 10.0.0.0/24 or 2001:db8::/64.",
            code="invalid_network",
            params={"value": value},
        ) from None
    raise ValidationError(
        "'%(value)s' has host bits set; did you mean %(meant)s?",
        code="invalid_network",
        params={"value": value, "meant": meant},
    )


def validate_network(value: str) -> None:
    parse_network(value)


def _list_items(value: str) -> list[str]:
    """The items of a comma- or space-separated list."""
    return [item for item in re.split(r"[\s,]+", value.strip()) if item]


def parse_address_list(value: str) -> list[str]:
    """Comma- or space-separated IP addresses, normalised; raises ValidationError naming the bad one."""
    result = []
    for item in _list_items(value):
        try:
            result.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ValidationError(
                "'%(item)s' is not an IP address.", code="invalid_address", params={"item": item}
            ) from None
    return result


def validate_address_list(value: str) -> None:
    parse_address_list(value)


def normalise_server(value: str) -> str:
    """One host name (lower-cased, without a trailing dot) or IP address, or ValidationError naming it."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(value))
    name = value.lower().removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_FQDN_LABEL_RE.match(label) for label in labels) or labels[-1].isdigit():
        raise ValidationError(
            "'%(item)s' is not a host name or IP address.", code="invalid_server", params={"item": value}
        )
    return name


def validate_server(value: str) -> None:
    normalise_server(value)


def parse_server_list(value: str) -> list[str]:
    """Comma- or space-separated host names or IP addresses (NTP servers), or ValidationError naming the bad one."""
    return [normalise_server(item) for item in _list_items(value)]


def validate_server_list(value: str) -> None:
    parse_server_list(value)


# crypt(3) hashes as glibc and libxcrypt write them: $id$[params$]salt$hash, in the crypt alphabet; "!" in front
# locks the account, and "!" or "*" alone means "no password login".
_CRYPT_RE = re.compile(r"^(!?\$(1|2[abxy]|5|6|7|y|gy)\$[./A-Za-z0-9=,]+(\$[./A-Za-z0-9=,]+){1,3}|!|\*)\Z")


def validate_crypt_hash(value: str) -> None:
    """A root password as /etc/shadow holds it: a crypt(3) hash, never a clear-text password or anything else."""
    if not _CRYPT_RE.match(value):
        raise ValidationError(
            "Not a crypt(3) hash. Give one made by `mkpasswd -m sha-512` or `openssl passwd -6` ($6$salt$hash; "
            "$y$, $5$, $2b$ and $1$ hashes too), `!` to lock root, or leave it empty.",
            code="invalid_hash",
        )


SSH_KEY_TYPES = {
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
}  # fmt: skip
# authorized_keys options (sshd(8)): name or name="value" (a value may hold \" but no raw quote), comma-separated.
_SSH_OPTION = r'[A-Za-z0-9-]+(="(?:[^"\\]|\\.)*")?'
_SSH_OPTIONS_RE = re.compile(rf"^{_SSH_OPTION}(,{_SSH_OPTION})*(?=[ \t])")
# Inside a line: no C0 control but tab, no DEL, no C1 control (U+0085 is one) and no Unicode line or paragraph
# separator, so that no reader (sshd, YAML, a shell, Python's str.splitlines) sees a line end where `text_lines` sees
# none.
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def text_lines(text: str) -> list[str]:
    r"""The lines of a multi-line value, the one definition for the validators and the renderers: split at "\n" (a
    "\r\n" is one end). A value whose lines hold another line end is refused by its validator (`_CONTROL_CHARS_RE`)."""
    return text.replace("\r\n", "\n").split("\n")


def _is_ssh_key_type(word: str) -> bool:
    return word in SSH_KEY_TYPES or word.endswith("-cert-v01@openssh.com")


def _ssh_key_problem(line: str) -> str | None:
    """Why a line is not an authorized_keys entry, or None."""
    options = None if _is_ssh_key_type(line.split(None, 1)[0]) else _SSH_OPTIONS_RE.match(line)
    words = line[options.end() if options else 0 :].split(None, 2)
    if not words or not _is_ssh_key_type(words[0]):
        return "does not start with a key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...) after its options"
    if len(words) < 2:
        return "has a key type but no key"
    kind, data = words[0], words[1]
    try:
        blob = base64.b64decode(data, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
    except (binascii.Error, struct.error):
        return "has key data that is not base64"
    if blob[4 : 4 + length] != kind.encode():
        return f"has key data that is not a {kind} key"
    return None


def validate_ssh_authorized_keys(value: str) -> None:
    """Lines as sshd reads authorized_keys: each `[options] type base64-key [comment]`; blank and # lines allowed."""
    for number, line in enumerate(text_lines(value), 1):
        if _CONTROL_CHARS_RE.search(line):  # before anything strips it: str.strip() takes U+2028 for white space
            problem: str | None = "holds a control character or a line separator"
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        else:
            problem = _ssh_key_problem(line.strip())
        if problem:
            raise ValidationError(
                "Line %(number)s %(problem)s; paste public keys as ssh-keygen writes them (one per line).",
                code="invalid_ssh_key",
                params={"number": number, "problem": problem},
            )


def validate_credential(value: str) -> None:
    """A registry user name or password: any printable text on one line: no control character (no newline, no tab, no
    C1 control) and no Unicode line or paragraph separator."""
    if value.count("\t") or _CONTROL_CHARS_RE.search(value):
        raise ValidationError("Contains a control character (a newline, a tab?); remove it.", code="invalid_credential")


def validate_username(value: str) -> None:
    """A registry user name: a credential without ':' (HTTP Basic authentication splits on the first one)."""
    validate_credential(value)
    if ":" in value:
        raise ValidationError("A user name cannot hold ':' (HTTP Basic authentication).", code="invalid_credential")
