from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Platform"

    def ready(self) -> None:
        from django.contrib import admin

        from apps.core import auth, checks  # noqa: F401 - checks registers the system checks

        auth.connect_signals()
        # The admin's login asks for the authenticator code once a user has enrolled one.
        admin.site.login_form = auth.StaffAuthenticationForm
        admin.site.login_template = "admin/staff_login.html"
        # Navigation grouped by role (apps.core.admin_nav): a marketer's groups first, internals for Admins.
        from apps.core import admin_nav

        admin_nav.install(admin.site)
