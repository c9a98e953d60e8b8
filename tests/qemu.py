"""Booting a real iPXE client in QEMU (TCG; see ../shared/RECIPES.md), watching its serial console."""

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Secure Boot enforced, Microsoft's keys enrolled (shim is signed by them): Debian's ovmf.
OVMF_SECURE_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_SECURE_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Machine:
    """A QEMU guest with a virtio NIC on user-mode networking (the host's loopback is 10.0.2.2)."""

    def __init__(self, *, mac: str, bootfile: str, workdir: Path, uefi: bool = False, disks: list[Path] = (),
                 memory: int = 512, nic: str = "virtio-net-pci", sata: bool = False,
                 forwards: list[tuple[int, str, int]] = (), restrict: bool = False, secure_boot: bool = False,
                 tftp: Path | None = None, tap: str = ""):  # fmt: skip
        """`forwards`: (port on 127.0.0.1, guest address, guest port) for TCP; `restrict`: the guest reaches nothing
        outside (not the host's loopback either), while the forwards still reach it. `secure_boot`: UEFI firmware
        that enforces Secure Boot, and the firmware's own PXE (no iPXE option ROM on the NIC); `tftp`: the directory
        QEMU's user network serves by TFTP on 10.0.2.2:69 (firmware PXE asks port 69); `tap`: the NIC on that tap
        device (which the test made) instead of QEMU's user network."""
        args = ["qemu-system-x86_64", "-nographic", "-no-reboot", "-accel", "tcg", "-m", str(memory), "-boot", "n"]
        netdev = ["user", "id=n0", f"bootfile={bootfile}"] if bootfile else ["user", "id=n0"]
        netdev += [f"tftp={tftp}"] if tftp else []
        netdev += [f"hostfwd=tcp:127.0.0.1:{port}-{address}:{guest}" for port, address, guest in forwards]
        netdev += ["restrict=on"] if restrict else []
        if tap:
            netdev = ["tap", "id=n0", f"ifname={tap}", "script=no", "downscript=no"]
        rom = ",romfile=" if secure_boot or tap else ""  # the firmware's own PXE and HTTP boot, not iPXE's ROM
        args += ["-netdev", ",".join(netdev), "-device", f"{nic},netdev=n0,mac={mac}{rom}"]
        if uefi or secure_boot or tap:
            variables = workdir / "OVMF_VARS.fd"
            shutil.copy(OVMF_SECURE_VARS if secure_boot else OVMF_VARS, variables)
            args += ["-machine", "q35,smm=on" if secure_boot else "q35"]
            args += ["-global", "driver=cfi.pflash01,property=secure,value=on"] if secure_boot else []
            code = OVMF_SECURE_CODE if secure_boot else OVMF_CODE
            args += ["-drive", f"if=pflash,format=raw,readonly=on,file={code}"]
            args += ["-drive", f"if=pflash,format=raw,file={variables}"]
        if sata:  # disks on an AHCI controller, as on real machines
            args += ["-device", "ahci,id=ahci"]
        for number, disk in enumerate(disks):
            if sata:
                args += ["-drive", f"file={disk},if=none,id=d{number},format=raw",
                         "-device", f"ide-hd,drive=d{number},bus=ahci.{number}"]  # fmt: skip
            else:
                args += ["-drive", f"file={disk},if=virtio,format=raw"]
        self.args = args
        self.output = ""
        self._process: subprocess.Popen | None = None

    def bmc_command(self, console: Path) -> str:
        """The guest as a BMC starts it (`IpmiSim`'s startcmd): no window, the serial console into `console`, reboots
        kept inside the guest, and QEMU's IPMI device talking to the simulator on `{serial_port}`."""
        args = [arg for arg in self.args if arg not in ("-nographic", "-no-reboot")]
        args += ["-display", "none", "-serial", f"file:{console}",
                 "-chardev", "socket,id=ipmi0,host=127.0.0.1,port={serial_port},reconnect=10",
                 "-device", "ipmi-bmc-extern,chardev=ipmi0,id=bmc0", "-device", "isa-ipmi-kcs,bmc=bmc0"]  # fmt: skip
        return " ".join(args)

    def __enter__(self) -> "Machine":
        self._process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for chunk in iter(lambda: self._process.stdout.read1(4096), b""):  # type: ignore[union-attr]
            self.output += chunk.decode("utf-8", "replace")

    @property
    def console(self) -> str:
        """The serial console so far, without terminal escape sequences."""
        return _ANSI.sub(" ", self.output)

    def wait_for(self, *texts: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(text in self.console for text in texts):
                return self.console
            if self._process is not None and self._process.poll() is not None:
                break
            time.sleep(0.2)
        missing = [text for text in texts if text not in self.console]
        raise AssertionError(f"console never showed {missing}; it showed:\n{self.console[-3000:]}")

    def wait_exit(self, timeout: float) -> str:
        """The whole console once the guest has stopped (a reboot ends QEMU here: `-no-reboot`)."""
        assert self._process is not None
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the guest still runs after {timeout} s; console:\n{self.console[-3000:]}") from None
        time.sleep(0.2)  # the reader thread drains the pipe
        return self.console

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
