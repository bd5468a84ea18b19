from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and organizations"

    def ready(self) -> None:
        from accounts import (  # noqa: F401 - registers
            access,
            audit,
            log_context,
            schema,
            schema_examples,
            signals,
        )
        from accounts.models import (
            ApiKey,
            AuditAction,
            AuditEvent,
            Organization,
            OrganizationNotice,
            ProviderCredential,
            Team,
            User,
        )

        access.register(Organization, organization="pk", learners="all")
        # A platform operator placed in an organization stays out of its staff's reach.
        access.register(User, owner="pk", hidden={"is_superuser": True})
        access.register(Team, owner="members")
        access.register(ApiKey, learners="none")
        access.register(AuditEvent, learners="none")
        access.register(ProviderCredential, learners="none")
        access.register(OrganizationNotice, learners="none")
        audit.register_actions(dict(AuditAction.choices))
        log_context.connect()
        signals.connect()
