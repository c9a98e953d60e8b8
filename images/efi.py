"""EFI binaries: who signed one (a loader, or a kernel's EFI stub), read from its PE certificate table. Used by the
installer (an image's kernel under Secure Boot) and by the boot environment's build (its own kernel)."""

import struct
from pathlib import Path

CERTIFICATE_TABLE = 4  # the PE data directory of the Authenticode signatures
STRINGS = (0x0C, 0x13)  # DER's UTF8String and PrintableString: the names in a certificate


def signature(path: Path) -> str | None:
    """What signs an EFI binary (a kernel's EFI stub too): the names in its Authenticode signature that say "Secure
    Boot" (Debian's: "Debian Secure Boot Signer ..."), or "a signature" when none does; None when it has none."""
    data = path.read_bytes()
    try:
        header = struct.unpack_from("<I", data, 0x3C)[0]
        if data[header : header + 4] != b"PE\0\0":
            return None
        optional = header + 24
        directories = optional + (112 if struct.unpack_from("<H", data, optional)[0] == 0x20B else 96)
        offset, size = struct.unpack_from("<II", data, directories + 8 * CERTIFICATE_TABLE)
    except struct.error:
        return None
    if size < 8 or offset + size > len(data):
        return None
    return ", ".join(_names(data[offset : offset + size])) or "a signature"


def _names(der: bytes) -> list[str]:
    """The certificate names in a signature that say "Secure Boot" (short DER strings: a tag, a length, the text)."""
    names = set()
    for start in range(len(der) - 2):
        length = der[start + 1]
        text = der[start + 2 : start + 2 + length]
        if der[start] in STRINGS and length < 0x80 and b"Secure Boot" in text and text.isascii():
            names.add(text.decode())
    return sorted(names)
