"""The audit vocabulary leaves the database: each app registers its actions with
accounts.audit.register_actions() at start-up, and AuditEvent.action keeps only its
length. This is the last migration a new audit action needs (none, from now on).

Only Django's state changes: choices were never a database constraint.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_audit_vocabulary"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(max_length=40),
        ),
    ]
