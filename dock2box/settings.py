"""Dock2Box settings, all read from the environment (django-environ).

Every variable read here is listed in `.env.example`; the embedded default (no variables at all) is SQLite under
`var/`, tasks run in-process, etcd sync off.
"""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)

# Run-time state of the embedded default: the SQLite database, the generated secret key, uploaded files.
VAR_DIR = Path(env.str("DOCK2BOX_VAR_DIR", default=str(BASE_DIR / "var")))


def _secret_key() -> str:
    """The key from the environment, else one generated once and kept under var/ (embedded default)."""
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Where hosts and browsers reach the portal; scripts, kernel arguments and the TFTP first stage use it.
DOCK2BOX_PUBLIC_URL = env.str("DOCK2BOX_PUBLIC_URL", default="").rstrip("/")

_default_hosts = ["127.0.0.1", "localhost", "[::1]"]
if DOCK2BOX_PUBLIC_URL:
    _default_hosts.append(urlsplit(DOCK2BOX_PUBLIC_URL).hostname or "")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=_default_hosts)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "dock2box",
    "images",
    "hosts",
    "provisioning",
]

MIDDLEWARE = [
    "provisioning.boot.middleware.BootHostGuard",  # before anything asks for the host (boot.md)
    "dock2box.middleware.RequestSizeLimit",
    "dock2box.middleware.NulRefused",
    "dock2box.middleware.DatabaseUnavailable",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dock2box.actors.ActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dock2box.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "dock2box.wsgi.application"
# Wrapped around Django's WSGI handler (dock2box/wsgi.py), outermost first: the boot path's answers from the cache.
WSGI_FRONTS = ["provisioning.boot.front.BootFront"]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'dock2box.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and DATABASES["default"]["NAME"] != ":memory:":
    # The embedded database holds every secret and token: readable by its owner only, like the secret key (SQLite
    # gives its journal files the database file's mode).
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _sqlite = Path(DATABASES["default"]["NAME"])
    _sqlite.touch(mode=0o600)
    _sqlite.chmod(0o600)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
# The boot path's few reads run as statements prepared once per PostgreSQL session; `auto` checks each session is not
# behind a pooler (which hands statements to other sessions), `off` never prepares (docs/operations.md).
DATABASE_PREPARED_STATEMENTS = env.str("DATABASE_PREPARED_STATEMENTS", default="auto")
if DATABASE_PREPARED_STATEMENTS not in ("auto", "off"):
    raise ImproperlyConfigured(f"DATABASE_PREPARED_STATEMENTS is auto or off, not {DATABASE_PREPARED_STATEMENTS!r}")
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default serves parallel requests too (installers posting events): writers wait for each other
    # (busy timeout, write lock taken at BEGIN) instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DOCK2BOX_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DOCK2BOX_STATIC_ROOT", default=str(VAR_DIR / "static")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("DOCK2BOX_MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    # Token first: its `WWW-Authenticate` header is what turns an anonymous request into a 401 (not a 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dock2box.api.permissions.ModelPermissions"],
    "DEFAULT_PARSER_CLASSES": [
        "dock2box.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "dock2box.filters.StrictFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "dock2box.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dock2box.api.exceptions.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Dock2Box API",
    "DESCRIPTION": "Hosts, images, subnets and PXE menus of a Dock2Box portal.",
    "VERSION": "2",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the installed package, not a CDN: the portal often lives on a network without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # One name for a choice set that several fields use.
    "ENUM_NAME_OVERRIDES": {"PowerActionEnum": "hosts.choices.PowerAction"},
}

# Build tokens expire this many seconds after their last use (config fetch or event); a boot refreshes them.
DOCK2BOX_BUILD_TOKEN_IDLE = env.int("DOCK2BOX_BUILD_TOKEN_IDLE", default=6 * 3600)
# Seconds after an install ends within which its installed system must report its first boot (else: not reporting).
DOCK2BOX_FIRST_BOOT_TIMEOUT = env.int("DOCK2BOX_FIRST_BOOT_TIMEOUT", default=20 * 60)
# A host's "last seen" is written at most once per this many seconds (boot storms are not write storms).
DOCK2BOX_LAST_SEEN_INTERVAL = env.int("DOCK2BOX_LAST_SEEN_INTERVAL", default=60)
# The boot path's timestamp writes (last seen, a build's use) wait up to this many seconds in their process and go
# out together in one statement (provisioning/timestamps.py); 0 writes each at once.
DOCK2BOX_TIMESTAMP_FLUSH = env.float("DOCK2BOX_TIMESTAMP_FLUSH", default=0.25)
# How often a process asks the shared cache whether the data changed (another process's change is seen within it).
DOCK2BOX_GENERATION_CHECK = env.float("DOCK2BOX_GENERATION_CHECK", default=0.5)
# Per-host boot scripts are answered from the shared cache while nothing changed, for at most this many seconds
# (provisioning/bootcache.py); 0 renders every one.
DOCK2BOX_BOOT_CACHE_SECONDS = env.int("DOCK2BOX_BOOT_CACHE_SECONDS", default=300)
# Limits: the largest request body (uploads of kernels, initrds and file images; more is a 413), the events one build
# keeps (`done` and `failed` always), the unknown MACs remembered (the oldest go first).
DOCK2BOX_UPLOAD_MAX_BYTES = env.int("DOCK2BOX_UPLOAD_MAX_BYTES", default=8 << 30)
DOCK2BOX_BUILD_EVENTS_MAX = env.int("DOCK2BOX_BUILD_EVENTS_MAX", default=500)
DOCK2BOX_DISCOVERED_MAX = env.int("DOCK2BOX_DISCOVERED_MAX", default=10000)

# TFTP: where Debian's ipxe package put the binaries, and where to listen (port 69 needs root or CAP_NET_BIND_SERVICE).
DOCK2BOX_IPXE_DIR = env.str("DOCK2BOX_IPXE_DIR", default="/usr/lib/ipxe")
# The Secure Boot chain's first stages: Debian's signed shim (shim-signed) and network GRUB (grub-efi-amd64-signed).
DOCK2BOX_SHIM_EFI = env.str("DOCK2BOX_SHIM_EFI", default="/usr/lib/shim/shimx64.efi.signed")
DOCK2BOX_GRUB_EFI = env.str("DOCK2BOX_GRUB_EFI", default="/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")
# Where the TFTP server reaches the portal to relay its answers to GRUB (default: DOCK2BOX_PUBLIC_URL).
DOCK2BOX_TFTP_PORTAL_URL = env.str("DOCK2BOX_TFTP_PORTAL_URL", default="")
DOCK2BOX_TFTP_BIND = env.str("DOCK2BOX_TFTP_BIND", default="0.0.0.0")  # noqa: S104 - a PXE server listens on the LAN
DOCK2BOX_TFTP_PORT = env.int("DOCK2BOX_TFTP_PORT", default=69)
# TFTP server processes sharing the port (the kernel spreads requests among them): one per core by default.
DOCK2BOX_TFTP_PROCESSES = env.int("DOCK2BOX_TFTP_PROCESSES", default=os.cpu_count() or 1)

# The etcd mirror of the original Dock2Box layout. Unset URL = mirror off (nothing is recorded for it).
DOCK2BOX_ETCD_URL = env.str("DOCK2BOX_ETCD_URL", default="")
DOCK2BOX_ETCD_API = env.str("DOCK2BOX_ETCD_API", default="v3")  # v3, v2 or both
DOCK2BOX_ETCD_PREFIX = env.str("DOCK2BOX_ETCD_PREFIX", default="").rstrip("/")
DOCK2BOX_ETCD_TIMEOUT = env.float("DOCK2BOX_ETCD_TIMEOUT", default=5.0)
# Seconds between periodic drains of what is left in the outbox, and between full reconciles.
DOCK2BOX_OUTBOX_DRAIN_INTERVAL = env.int("DOCK2BOX_OUTBOX_DRAIN_INTERVAL", default=30)
DOCK2BOX_RECONCILE_INTERVAL = env.int("DOCK2BOX_RECONCILE_INTERVAL", default=300)

# A running build whose installer has not been heard from for this many seconds shows as stalled on the overview.
DOCK2BOX_BUILD_STALLED_AFTER = env.int("DOCK2BOX_BUILD_STALLED_AFTER", default=900)

# Power control through the hosts' BMCs: seconds to wait for a power state change, tries after a BMC that did not
# answer, seconds between refreshes of every host's power state, and how many BMCs a refresh asks at once.
DOCK2BOX_POWER_WAIT = env.int("DOCK2BOX_POWER_WAIT", default=60)
DOCK2BOX_POWER_RETRIES = env.int("DOCK2BOX_POWER_RETRIES", default=2)
DOCK2BOX_POWER_REFRESH_INTERVAL = env.int("DOCK2BOX_POWER_REFRESH_INTERVAL", default=300)
DOCK2BOX_POWER_CONCURRENCY = env.int("DOCK2BOX_POWER_CONCURRENCY", default=32)

# /api/v1 (the original REST contract): anonymous reads as the original allowed; writes always need a token.
DOCK2BOX_V1_ANONYMOUS_READ = env.bool("DOCK2BOX_V1_ANONYMOUS_READ", default=False)
# Reverse proxies whose X-Forwarded-For names the client (a build binds to its installer's address).
DOCK2BOX_TRUSTED_PROXIES = env.list("DOCK2BOX_TRUSTED_PROXIES", default=[])

# Backups (manage.py backup): where archives go and how many are kept.
DOCK2BOX_BACKUP_DIR = env.str("DOCK2BOX_BACKUP_DIR", default=str(VAR_DIR / "backups"))
DOCK2BOX_BACKUP_KEEP = env.int("DOCK2BOX_BACKUP_KEEP", default=48)

# Prometheus: with several processes (gunicorn workers, tftpd), a directory they all share makes counters add up.
# It must be empty when the processes start (deploy/gunicorn.conf.py clears it).
DOCK2BOX_METRICS_DIR = env.str("DOCK2BOX_METRICS_DIR", default="")
if DOCK2BOX_METRICS_DIR:
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", DOCK2BOX_METRICS_DIR)

# Whether picking an image version in a host's boot menu starts an install (off: only the portal starts builds;
# the boot endpoints are anonymous, and a picked install wipes the disk).
DOCK2BOX_MENU_INSTALL = env.bool("DOCK2BOX_MENU_INSTALL", default=False)

# Registries spoken to over plain HTTP (host or host:port, comma-separated), e.g. a registry on the lab network.
DOCK2BOX_INSECURE_REGISTRIES = env.list("DOCK2BOX_INSECURE_REGISTRIES", default=[])

# When set (e.g. `/protected-media`), stored boot and image files are sent by nginx: the portal answers with
# `X-Accel-Redirect: <prefix>/<file name under MEDIA_ROOT>` and nginx serves it from an `internal` location.
DOCK2BOX_FILES_ACCEL_REDIRECT = env.str("DOCK2BOX_FILES_ACCEL_REDIRECT", default="")

# The kernel flavour `manage.py bootenv` builds the installer's boot environment with: `cloud` (small, for VMs) or
# `generic` (Debian's linux-image-amd64, with the NIC and storage modules real hardware needs).
DOCK2BOX_BOOTENV_KERNEL = env.str("DOCK2BOX_BOOTENV_KERNEL", default="cloud")

# The cache holds the boot catalogue (menus, images, defaults) and its generation. Several processes (gunicorn
# workers) must share it, so it defaults to the broker's Redis; the embedded default keeps it in memory.
DOCK2BOX_CACHE_URL = env.str("DOCK2BOX_CACHE_URL", default="")
# While the shared cache is down the boot path answers from the database, asking the cache again this often (seconds).
DOCK2BOX_CACHE_RETRY = env.float("DOCK2BOX_CACHE_RETRY", default=1.0)
_cache_url = DOCK2BOX_CACHE_URL or env.str("CELERY_BROKER_URL", default="")
CACHES = {
    "default": (
        {
            "BACKEND": "dock2box.cache.SharedRedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": "d2b",
            # A Redis that stopped answering costs a boot request this much, once per DOCK2BOX_CACHE_RETRY.
            "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        }
        if _cache_url.startswith(("redis://", "rediss://"))
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Celery: with no broker the embedded default runs every task in-process, at once.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
# A broker that is down must not hold a request up: publishing gives up quickly; the change waits in the outbox.
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
CELERY_BEAT_SCHEDULE = {
    "outbox-drain": {"task": "provisioning.tasks.outbox_drain_periodic", "schedule": DOCK2BOX_OUTBOX_DRAIN_INTERVAL},
    "mirror-reconcile": {"task": "provisioning.tasks.mirror_reconcile", "schedule": DOCK2BOX_RECONCILE_INTERVAL},
    "power-refresh": {"task": "provisioning.tasks.power_refresh", "schedule": DOCK2BOX_POWER_REFRESH_INTERVAL},
}
if DOCK2BOX_BOOT_CACHE_SECONDS:  # rendered ahead again before the entries lapse
    CELERY_BEAT_SCHEDULE["boot-render-ahead"] = {
        "task": "provisioning.tasks.boot_scripts_render_ahead",
        "schedule": DOCK2BOX_BOOT_CACHE_SECONDS * 0.8,
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "dock2box.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.str("DOCK2BOX_LOG_FORMAT", default="plain"),
        }
    },
    "root": {"handlers": ["console"], "level": env.str("DOCK2BOX_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
