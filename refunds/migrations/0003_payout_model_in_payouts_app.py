import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """RefundCase.payout now names payouts.Payout: the same table, so no database change."""

    dependencies = [
        ("payouts", "0001_initial"),
        ("refunds", "0002_case_payout_blocked_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="refundcase",
                    name="payout",
                    field=models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="refund_case",
                        to="payouts.payout",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
