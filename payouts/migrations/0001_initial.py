
import django.db.models.deletion
import django.utils.timezone
import django_fsm
import uuid
from django.db import migrations, models


MODELS = ("payout", "gatewayrefund")


def _relabel(apps, old: str, new: str) -> None:
    # Permissions and admin log entries point at the content type: relabel it rather than let
    # Django make a second one, so grants of "orders.change_payout" become "payouts.change_payout".
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if ContentType.objects.filter(app_label=old, model=model).exists():
            ContentType.objects.filter(app_label=new, model=model).delete()
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def move_content_types(apps, schema_editor) -> None:
    _relabel(apps, "orders", "payouts")


def move_content_types_back(apps, schema_editor) -> None:
    _relabel(apps, "payouts", "orders")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('orders', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The tables stay where they are (orders_payout, orders_gatewayrefund): only
            # Django's idea of which app owns them changes.
            state_operations=[
            migrations.CreateModel(
                name='GatewayRefund',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('idempotency_key', models.CharField(max_length=120, unique=True)),
                    ('payment_reference', models.CharField(max_length=128)),
                    ('amount', models.DecimalField(decimal_places=3, max_digits=15)),
                    ('currency', models.CharField(max_length=3)),
                    ('reference', models.CharField(max_length=64, unique=True)),
                    ('status', models.CharField(max_length=20)),
                    ('calls', models.PositiveIntegerField(default=1)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ],
                options={
                    'db_table': 'orders_gatewayrefund',
                },
            ),
            migrations.CreateModel(
                name='Payout',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                    ('updated_at', models.DateTimeField(auto_now=True)),
                    ('public_id', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                    ('amount', models.DecimalField(decimal_places=3, max_digits=15)),
                    ('currency', models.CharField(max_length=3)),
                    ('payment_method', models.CharField(choices=[('card', 'Card'), ('paypal', 'PayPal'), ('wallet', 'Wallet'), ('bank_transfer', 'Bank transfer')], max_length=20)),
                    ('payment_reference', models.CharField(max_length=128)),
                    ('idempotency_key', models.CharField(max_length=120, unique=True)),
                    ('purpose', models.CharField(max_length=20)),
                    ('subject_id', models.UUIDField(blank=True, null=True)),
                    ('gateway_reference', models.CharField(blank=True, max_length=128)),
                    ('status', django_fsm.FSMField(choices=[('pending', 'Pending'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='pending', max_length=50, protected=True)),
                    ('attempts', models.PositiveIntegerField(default=0)),
                    ('failure_reason', models.CharField(blank=True, max_length=300)),
                    ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                    ('claimed_until', models.DateTimeField(blank=True, null=True)),
                    ('succeeded_at', models.DateTimeField(blank=True, null=True)),
                    ('overdue_alerted_at', models.DateTimeField(blank=True, null=True)),
                    ('order', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payouts', to='orders.order')),
                ],
                options={
                    'db_table': 'orders_payout',
                    'ordering': ['-created_at', '-id'],
                    'indexes': [models.Index(condition=models.Q(('status__in', ['pending', 'failed'])), fields=['next_attempt_at'], name='payout_unsettled_idx')],
                    'constraints': [models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='payout_amount_positive')],
                },
                bases=(django_fsm.FSMModelMixin, models.Model),
            ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
