from django.db import migrations


class Migration(migrations.Migration):
    """Payout and GatewayRefund now belong to the payouts app; their tables stay as they are."""

    dependencies = [
        ("orders", "0001_initial"),
        ("payouts", "0001_initial"),
        ("refunds", "0003_payout_model_in_payouts_app"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="GatewayRefund"),
                migrations.DeleteModel(name="Payout"),
            ],
            database_operations=[],
        ),
    ]
