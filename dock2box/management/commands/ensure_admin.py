"""Create the first admin user with a generated password, and say how to log in."""

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the superuser 'admin' with a generated password (kept in var/admin-password) unless it exists."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/")

    def handle(self, *args: Any, username: str, url: str, **options: Any) -> None:
        users = get_user_model().objects
        password_file = settings.VAR_DIR / "admin-password"
        if not users.filter(username=username).exists():
            password = secrets.token_urlsafe(12)
            users.create_superuser(username=username, email="", password=password)
            settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        if password_file.exists():
            login = f"user {username}, password {password_file.read_text().strip()}"
        else:
            login = f"user {username} (set its password with: manage.py changepassword {username})"
        self.stdout.write(self.style.SUCCESS(f"Dock2Box admin: {url}  ({login})"))
