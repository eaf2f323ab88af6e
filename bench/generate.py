"""Fill the PostgreSQL bench database with a marketplace's worth of data, fast.

    .venv/bin/python bench/generate.py             # scale 1.0: 500 000 orders, 100 000 cases
    .venv/bin/python bench/generate.py --scale 0.01 --force

Scale 1.0: 2 000 shops, 100 000 buyers, 500 000 orders (~1 M items), 100 000 refund cases in
every state, 10 000 disputes, ~260 000 messages, ~1.5 M audit events. Everything is written
server-side with INSERT … SELECT generate_series (no row crosses the wire), deterministic
(setseed), and shaped like a portal whose sweeps ran a minute ago: no deadline has passed
unswept, open cases sit on recently delivered orders, at most one open case per order.

The database is created if missing and migrated; its COMMENT records the scale, so a second
run at the same scale does nothing (``--force`` drops and rebuilds it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.common import DB_NAME, conninfo, migrate


def counts(scale: float) -> dict[str, int]:
    return {
        "shops": max(5, round(2_000 * scale)),
        "buyers": max(50, round(100_000 * scale)),
        "orders": max(500, round(500_000 * scale)),
        "cases": max(100, round(100_000 * scale)),
    }


def marker(scale: float) -> str:
    return f"refundportal bench data, scale={scale:g}"


def current_marker() -> str | None:
    with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [DB_NAME],
        ).fetchone()
    if row is None:
        return None
    return row[0] or ""


def recreate() -> None:
    with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def ensure(scale: float, *, force: bool = False, quiet: bool = False) -> None:
    """Make sure the bench database holds data at `scale` (used by the other benchmarks)."""
    found = current_marker()
    if found == marker(scale) and not force:
        if not quiet:
            print(f"{DB_NAME}: already at scale {scale:g} (--force rebuilds it)")
        return
    if found is None:
        with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    else:
        recreate()
    started = time.perf_counter()
    migrate()
    fill(scale)
    print(f"{DB_NAME}: generated at scale {scale:g} in {time.perf_counter() - started:.1f} s")


# --- the data ---------------------------------------------------------------------------------

# Every open case is recent and every deadline still ahead; closed and refunded cases are old.
# Fractions of the case ranks (ordered by the order's delivery, newest first).
STATE_BANDS = [
    ("requested", 0.00, 0.08),
    ("offer_made", 0.08, 0.12),
    ("awaiting_return", 0.12, 0.18),
    ("return_shipped", 0.18, 0.23),
    ("refund_pending", 0.23, 0.26),
    ("escalated", 0.26, 0.29),  # an undecided dispute each
    ("refunded", 0.29, 0.74),  # the first 2.5 % of all cases here won a dispute
    ("closed", 0.74, 1.00),
]
# Closed cases by reason, as fractions of all cases (they sum to 0.26).
CLOSED_BANDS = [
    ("rejected", 0.080),
    ("offer_declined", 0.040),
    ("expired", 0.030),
    ("withdrawn", 0.065),
    ("dispute_lost", 0.035),
    ("dispute_withdrawn", 0.010),
]


def _band_sql(column: str) -> str:
    parts = [f"WHEN {column} < {hi} THEN '{state}'" for state, _lo, hi in STATE_BANDS]
    return "CASE " + " ".join(parts) + " END"


def _closed_reason_sql(column: str) -> str:
    parts, lo = [], 0.74
    for reason, share in CLOSED_BANDS:
        lo += share
        parts.append(f"WHEN {column} < {lo:.4f} THEN '{reason}'")
    return "CASE " + " ".join(parts) + " ELSE 'withdrawn' END"


STEPS: list[tuple[str, str]] = [
    (
        "users",
        """
        INSERT INTO orders_user (id, password, is_superuser, created_at, updated_at, public_id,
                                 email, name, time_zone, is_staff, is_active, is_marketplace)
        SELECT i, '!bench', i > %(shops)s + %(buyers)s, now() - interval '2 years', now(),
               gen_random_uuid(),
               CASE WHEN i <= %(shops)s THEN 'seller' || i || '@bench.example'
                    WHEN i <= %(shops)s + %(buyers)s THEN 'buyer' || i || '@bench.example'
                    ELSE 'staff' || i || '@bench.example' END,
               CASE WHEN i <= %(shops)s THEN 'Seller ' || i ELSE 'Person ' || i END,
               (ARRAY['Asia/Shanghai', 'Europe/Berlin', 'America/New_York', 'UTC',
                      'America/Los_Angeles'])[1 + i %% 5],
               i > %(shops)s + %(buyers)s, true, false
        FROM generate_series(1, %(shops)s + %(buyers)s + 5) AS i
    """,
    ),
    (
        "shops",
        """
        INSERT INTO orders_shop (id, created_at, updated_at, slug, name, return_policy, owner_id)
        SELECT i, now() - interval '2 years', now(), 'shop-' || i, 'Shop ' || i,
               (ARRAY[interval '15 days', interval '30 days', interval '7 days'])[1 + i %% 3], i
        FROM generate_series(1, %(shops)s) AS i
    """,
    ),
    # Buyers and shops follow a skewed distribution: a few buy (and sell) a lot.
    (
        "orders",
        """
        INSERT INTO orders_order (id, created_at, updated_at, number, currency, total, reserved,
                                  payment_method, payment_reference, card_brand, card_last4,
                                  placed_at, deliver_by, shipped_at, carrier, tracking_number,
                                  delivered_at, cancelled_at, cancel_reason, return_policy,
                                  status, buyer_id, shop_id)
        SELECT i, placed, placed, 'ORD-' || lpad(i::text, 8, '0'), cur,
               CASE WHEN cur = 'JPY' THEN round(500 + r_total * 30000)
                    ELSE round((5 + r_total * 495)::numeric, 2) END,
               0, pm, 'ch_' || i,
               CASE WHEN pm = 'card' THEN (ARRAY['Visa', 'Mastercard', 'Amex', ''])[1 + i %% 4]
                    ELSE '' END,
               CASE WHEN pm = 'card' THEN lpad((i %% 10000)::text, 4, '0') ELSE '' END,
               placed, placed + interval '12 days',
               CASE WHEN status IN ('shipped', 'delivered') THEN placed + interval '20 hours' END,
               CASE WHEN status IN ('shipped', 'delivered') THEN 'SF Express' ELSE '' END,
               CASE WHEN status IN ('shipped', 'delivered') THEN 'SF' || i ELSE '' END,
               CASE WHEN status = 'delivered' THEN placed + interval '4 days' END,
               CASE WHEN status = 'cancelled' THEN placed + interval '2 hours' END,
               CASE WHEN status = 'cancelled' THEN 'buyer_request' ELSE '' END,
               interval '15 days', status, buyer, shop
        FROM (
            SELECT i, r_total, placed, buyer, shop,
                   CASE WHEN r_cur < 0.45 THEN 'USD' WHEN r_cur < 0.75 THEN 'EUR'
                        WHEN r_cur < 0.95 THEN 'CNY' ELSE 'JPY' END AS cur,
                   CASE WHEN r_pm < 0.60 THEN 'card' WHEN r_pm < 0.80 THEN 'paypal'
                        WHEN r_pm < 0.92 THEN 'wallet' ELSE 'bank_transfer' END AS pm,
                   CASE WHEN r_status < 0.03 THEN 'cancelled'
                        WHEN placed > now() - interval '1 day' THEN
                            CASE WHEN r_status < 0.5 THEN 'paid' ELSE 'shipped' END
                        WHEN placed > now() - interval '5 days' THEN
                            CASE WHEN r_status < 0.6 THEN 'shipped' ELSE 'delivered' END
                        ELSE 'delivered' END AS status
            FROM (
                SELECT i, random() AS r_total, random() AS r_cur, random() AS r_pm,
                       random() AS r_status,
                       now() - random() * interval '365 days' AS placed,
                       %(shops)s + 1 + floor(%(buyers)s * power(random(), 1.3))::bigint AS buyer,
                       1 + floor(%(shops)s * power(random(), 1.5))::bigint AS shop
                FROM generate_series(1, %(orders)s) AS i
            ) AS r
        ) AS o
    """,
    ),
    (
        "items",
        """
        INSERT INTO orders_orderitem (order_id, sku, title, quantity, unit_price)
        SELECT o.id, 'SKU-' || (o.id %% 5000) || '-' || k, 'Item ' || k || ' of ' || o.number,
               1, CASE WHEN k < n THEN round(o.total / n, CASE WHEN o.currency = 'JPY' THEN 0
                                                                ELSE 2 END)
                       ELSE o.total - (n - 1) * round(o.total / n,
                                                      CASE WHEN o.currency = 'JPY' THEN 0
                                                           ELSE 2 END) END
        FROM (SELECT id, number, total, currency, 1 + id %% 3 AS n FROM orders_order) AS o,
             generate_series(1, o.n) AS k
    """,
    ),
    # One case per chosen delivered order; newest deliveries get the open states.
    (
        "cases",
        """
        CREATE TEMP TABLE bench_case_order AS
        SELECT row_number() OVER (ORDER BY delivered_at DESC, id) AS rank, id AS order_id,
               total, currency
        FROM (SELECT id, delivered_at, total, currency FROM orders_order
              WHERE status = 'delivered' ORDER BY random() LIMIT %(cases)s) AS c;
        INSERT INTO refunds_refundcase (
            id, created_at, updated_at, public_id, reason, description, amount, currency,
            return_item, state, closed_reason, reject_reason, respond_by, respond_reminded_at,
            answered_at, auto_accepted, offer_amount, offer_by, return_number, rma_issued_at,
            return_by, return_reminded_at, return_carrier, return_tracking_number,
            return_shipped_at, confirm_by, approved_amount, approved_at, refunded_amount,
            refunded_at, closed_at, dispute_by, dispute_reminded_at, order_id, payout_id)
        SELECT rank, created, now(), gen_random_uuid(),
               (ARRAY['changed_mind', 'not_received', 'not_as_described', 'damaged',
                      'wrong_item', 'other'])[1 + rank %% 6],
               'Generated case ' || rank, amount, currency, return_item, state,
               CASE WHEN state IN ('closed', 'escalated') THEN reason ELSE '' END,
               CASE WHEN reason = 'rejected' THEN 'Used item' ELSE '' END,
               created + interval '48 hours',
               CASE WHEN created + interval '24 hours' < now() THEN created + interval '24 hours'
                    END,
               CASE WHEN state NOT IN ('requested') AND NOT (state = 'closed'
                         AND reason = 'withdrawn') THEN created + interval '20 hours' END,
               false,
               CASE WHEN state = 'offer_made' OR reason = 'offer_declined'
                    THEN round(amount / 2, CASE WHEN currency = 'JPY' THEN 0 ELSE 2 END) END,
               CASE WHEN state = 'offer_made' OR reason = 'offer_declined'
                    THEN created + interval '68 hours' END,
               CASE WHEN return_item THEN 'RMA-' || upper(lpad(to_hex(rank), 8, '0')) END,
               CASE WHEN rma THEN created + interval '20 hours' END,
               CASE WHEN rma THEN created + interval '20 hours' + interval '7 days' END,
               CASE WHEN rma AND created + interval '20 hours' + interval '5 days' < now()
                    THEN created + interval '20 hours' + interval '5 days' END,
               CASE WHEN return_shipped THEN 'SF Express' ELSE '' END,
               CASE WHEN return_shipped THEN 'SFR' || rank ELSE '' END,
               CASE WHEN return_shipped THEN created + interval '3 days' END,
               CASE WHEN return_shipped THEN created + interval '17 days' END,
               CASE WHEN state IN ('awaiting_return', 'return_shipped', 'refund_pending',
                                   'refunded') THEN amount END,
               CASE WHEN state IN ('refund_pending', 'refunded')
                    THEN least(now() - interval '1 hour', created + interval '20 hours') END,
               CASE WHEN state = 'refunded' THEN amount ELSE 0 END,
               CASE WHEN state = 'refunded' THEN created + interval '21 hours' END,
               CASE WHEN state IN ('closed', 'escalated') THEN created + interval '30 hours'
                    END,
               CASE WHEN state = 'escalated' OR (state = 'closed'
                         AND reason IN ('rejected', 'offer_declined', 'expired', 'withdrawn'))
                    THEN created + interval '78 hours' END,
               CASE WHEN state = 'escalated' OR (state = 'closed'
                         AND reason IN ('rejected', 'offer_declined', 'expired', 'withdrawn'))
                    THEN created + interval '66 hours' END,
               order_id, NULL
        FROM (
            SELECT rank, order_id, currency, state, reason,
                   (return_item AND state NOT IN ('offer_made'))
                       OR (state = 'closed' AND reason = 'expired') AS return_item,
                   (return_item AND state IN ('awaiting_return', 'return_shipped',
                                              'refund_pending', 'refunded'))
                       OR (state = 'closed' AND reason = 'expired') AS rma,
                   return_item AND state IN ('return_shipped', 'refund_pending', 'refunded')
                       AS return_shipped,
                   CASE WHEN currency = 'JPY'
                        THEN greatest(1, round((total * (0.3 + 0.7 * r_amount))::numeric, 0))
                        ELSE greatest(0.01, round((total * (0.3 + 0.7 * r_amount))::numeric, 2))
                        END AS amount,
                   -- open cases are recent (their deadlines still ahead), the rest older
                   CASE state
                     WHEN 'requested' THEN now() - r_age * interval '47 hours'
                     WHEN 'offer_made' THEN now() - interval '20 hours'
                                           - r_age * interval '47 hours'
                     WHEN 'awaiting_return' THEN now() - interval '20 hours'
                                                - r_age * interval '6 days'
                     WHEN 'return_shipped' THEN now() - interval '3 days'
                                               - r_age * interval '13 days'
                     WHEN 'refund_pending' THEN now() - interval '21 hours'
                                               - r_age * interval '2 hours'
                     WHEN 'escalated' THEN now() - interval '4 days'
                                          - r_age * interval '3 days'
                     ELSE now() - interval '10 days' - r_age * interval '300 days' END
                       AS created
            FROM (
                SELECT rank, order_id, total, currency, random() AS r_amount, random() AS r_age,
                       random() < 0.45 AS return_item,
                       """
        + _band_sql("(rank - 1)::float / %(cases)s")
        + """ AS state,
                       """
        + _closed_reason_sql("(rank - 1)::float / %(cases)s")
        + """ AS reason
                FROM bench_case_order
            ) AS s
        ) AS c
    """,
    ),
    # Payouts: refunded cases (succeeded), refund_pending (pending), cancelled orders.
    (
        "payouts",
        """
        INSERT INTO orders_payout (created_at, updated_at, public_id, amount, currency,
                                   payment_method, payment_reference, idempotency_key, purpose,
                                   subject_id, gateway_reference, status, attempts,
                                   failure_reason, next_attempt_at, succeeded_at, order_id)
        SELECT c.approved_at, c.approved_at, gen_random_uuid(), c.approved_amount, c.currency,
               o.payment_method, o.payment_reference, 'refund:' || c.public_id, 'refund',
               c.public_id,
               CASE WHEN c.state = 'refunded' THEN 'fake_' || c.id ELSE '' END,
               CASE WHEN c.state = 'refunded' THEN 'succeeded' ELSE 'pending' END,
               1, '', CASE WHEN c.state = 'refund_pending' THEN c.approved_at END,
               c.refunded_at, c.order_id
        FROM refunds_refundcase AS c JOIN orders_order AS o ON o.id = c.order_id
        WHERE c.state IN ('refunded', 'refund_pending');
        INSERT INTO orders_payout (created_at, updated_at, public_id, amount, currency,
                                   payment_method, payment_reference, idempotency_key, purpose,
                                   subject_id, gateway_reference, status, attempts,
                                   failure_reason, succeeded_at, order_id)
        SELECT cancelled_at, cancelled_at, gen_random_uuid(), total, currency, payment_method,
               payment_reference, 'cancel:' || number, 'cancel', NULL, 'fake_c' || id,
               'succeeded', 1, '', cancelled_at + interval '1 minute', id
        FROM orders_order WHERE status = 'cancelled';
        UPDATE orders_order AS o SET reserved = p.amount
        FROM orders_payout AS p WHERE p.order_id = o.id;
        UPDATE refunds_refundcase AS c SET payout_id = p.id
        FROM orders_payout AS p WHERE p.idempotency_key = 'refund:' || c.public_id;
    """,
    ),
    (
        "messages",
        """
        INSERT INTO orders_message (public_id, order_id, case_id, author_id, body, created_at)
        SELECT gen_random_uuid(), c.order_id, c.public_id,
               CASE WHEN k = 1 THEN o.buyer_id ELSE s.owner_id END,
               CASE WHEN k = 1 THEN 'The item arrived damaged, see the photos.'
                    ELSE 'Sorry to hear that - we will sort it out.' END,
               c.created_at + k * interval '1 hour'
        FROM refunds_refundcase AS c JOIN orders_order AS o ON o.id = c.order_id
             JOIN orders_shop AS s ON s.id = o.shop_id, generate_series(1, 2) AS k;
        INSERT INTO orders_message (public_id, order_id, case_id, author_id, body, created_at)
        SELECT gen_random_uuid(), o.id, NULL, o.buyer_id, 'Where is my parcel?',
               o.placed_at + interval '3 days'
        FROM orders_order AS o WHERE o.id %% 8 = 0;
    """,
    ),
    # The audit trail: what each order and case went through (already dispatched).
    (
        "events",
        """
        INSERT INTO orders_event (case_id, dispute_id, kind, from_state, to_state, note,
                                  payload, created_at, dispatched_at, actor_id, order_id)
        SELECT NULL, NULL, e.kind, e.from_state, e.to_state, '',
               jsonb_build_object('notify', jsonb_build_object('buyer', o.buyer_id),
                                  'order_number', o.number, 'currency', o.currency),
               e.at, e.at + interval '2 seconds', NULL, o.id
        FROM orders_order AS o,
             LATERAL (VALUES ('order.received', '', 'paid', o.placed_at),
                             ('order.shipped', 'paid', 'shipped', o.shipped_at),
                             ('order.delivered', 'shipped', 'delivered', o.delivered_at),
                             ('order.cancelled', 'paid', 'cancelled', o.cancelled_at))
                     AS e(kind, from_state, to_state, at)
        WHERE e.at IS NOT NULL;
        INSERT INTO orders_event (case_id, dispute_id, kind, from_state, to_state, note,
                                  payload, created_at, dispatched_at, actor_id, order_id)
        SELECT c.public_id, NULL, e.kind, e.from_state, e.to_state, '',
               jsonb_build_object('notify', jsonb_build_object('seller', s.owner_id),
                                  'order_number', o.number, 'case_id', c.public_id::text,
                                  'amount', c.amount::text,
                                  'respond_by', c.respond_by),
               e.at, e.at + interval '2 seconds', NULL, c.order_id
        FROM refunds_refundcase AS c JOIN orders_order AS o ON o.id = c.order_id
             JOIN orders_shop AS s ON s.id = o.shop_id,
             LATERAL (VALUES ('refund.requested', '', 'requested', c.created_at),
                             ('refund.accepted', 'requested', 'refund_pending', c.approved_at),
                             ('refund.offer_made', 'requested', 'offer_made', c.answered_at),
                             ('refund.return_shipped', 'awaiting_return', 'return_shipped',
                              c.return_shipped_at),
                             ('refund.refunded', 'refund_pending', 'refunded', c.refunded_at),
                             ('refund.closed', '', 'closed', c.closed_at))
                     AS e(kind, from_state, to_state, at)
        WHERE e.at IS NOT NULL;
    """,
    ),
]

# Disputes: every escalated case has an undecided one (flags set where a clock passed, as the
# sweeps would have), dispute_lost / dispute_withdrawn cases a decided or withdrawn one, and
# the first 2.5 % of case ranks (refunded) one decided for the buyer.
DISPUTE_STEPS: list[tuple[str, str]] = [
    (
        "disputes",
        """
        INSERT INTO disputes_dispute (
            created_at, updated_at, public_id, state, contact_name, contact_email,
            contact_phone, statement, desired_amount, currency, seller_statement,
            seller_statement_at, statement_by, decision_target, decision_due,
            statement_lapsed_at, target_flagged_at, due_flagged_at, info_party, info_question,
            info_requested_at, outcome, amount, rationale, decided_at, withdrawn_at,
            assigned_to_id, case_id, decided_by_id)
        SELECT opened, now(), gen_random_uuid(), d.state, 'Person ' || o.buyer_id,
               'buyer' || o.buyer_id || '@bench.example', '+86 138 0000 0000',
               'The seller refused a refund for a damaged item.', c.amount, c.currency,
               CASE WHEN with_statement THEN 'We shipped it intact.' ELSE '' END,
               CASE WHEN with_statement THEN opened + interval '20 hours' END,
               opened + interval '48 hours', opened + interval '5 days',
               opened + interval '7 days',
               CASE WHEN NOT with_statement AND opened + interval '48 hours' < now()
                    THEN opened + interval '48 hours' END,
               CASE WHEN opened + interval '5 days' < now() THEN opened + interval '5 days'
                    END,
               CASE WHEN opened + interval '7 days' < now() THEN opened + interval '7 days'
                    END,
               CASE WHEN d.state = 'info_requested' THEN 'buyer' ELSE '' END,
               CASE WHEN d.state = 'info_requested' THEN 'Please send a photo.' ELSE '' END,
               CASE WHEN d.state = 'info_requested' THEN opened + interval '1 day' END,
               CASE d.state WHEN 'resolved_buyer' THEN 'buyer'
                            WHEN 'resolved_seller' THEN 'seller' ELSE '' END,
               CASE WHEN d.state = 'resolved_buyer' THEN c.amount END,
               CASE WHEN d.state LIKE 'resolved%%' THEN 'Decided on the evidence.' ELSE '' END,
               CASE WHEN d.state LIKE 'resolved%%' THEN opened + interval '3 days' END,
               CASE WHEN d.state = 'withdrawn' THEN opened + interval '1 day' END,
               CASE WHEN d.state <> 'open' THEN %(staff)s END,
               c.id,
               CASE WHEN d.state LIKE 'resolved%%' THEN %(staff)s END
        FROM (
            SELECT c.id,
                   CASE WHEN c.state = 'escalated' THEN
                            (ARRAY['open', 'under_review', 'under_review',
                                   'info_requested'])[1 + c.id %% 4]
                        WHEN c.closed_reason = 'dispute_lost' THEN 'resolved_seller'
                        WHEN c.closed_reason = 'dispute_withdrawn' THEN 'withdrawn'
                        ELSE 'resolved_buyer' END AS state,
                   c.id %% 3 <> 0 AS with_statement,
                   CASE WHEN c.state = 'escalated' THEN c.closed_at + interval '10 hours'
                        ELSE c.created_at + interval '4 days' END AS opened
            FROM refunds_refundcase AS c
            WHERE c.state = 'escalated'
               OR c.closed_reason IN ('dispute_lost', 'dispute_withdrawn')
               OR (c.state = 'refunded' AND c.id < 0.315 * %(cases)s)
        ) AS d
        JOIN refunds_refundcase AS c ON c.id = d.id
        JOIN orders_order AS o ON o.id = c.order_id
    """,
    ),
    (
        "dispute messages",
        """
        INSERT INTO disputes_disputemessage (public_id, dispute_id, author_id, body, created_at)
        SELECT gen_random_uuid(), d.id, o.buyer_id, 'Here is the receipt.',
               d.created_at + k * interval '2 hours'
        FROM disputes_dispute AS d JOIN refunds_refundcase AS c ON c.id = d.case_id
             JOIN orders_order AS o ON o.id = c.order_id, generate_series(1, 2) AS k
    """,
    ),
]


BIG_TABLES = (
    "orders_order",
    "orders_orderitem",
    "orders_event",
    "orders_message",
    "orders_payout",
    "refunds_refundcase",
)


def fill(scale: float) -> None:
    params = counts(scale)
    params["staff"] = params["shops"] + params["buyers"] + 1
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SELECT setseed(0.42)")
        # Bulk-load shape: foreign-key triggers off (the data is referential by construction)
        # and the plain indexes of the big tables built once at the end instead of row by row.
        conn.execute("SET session_replication_role = replica")
        with conn.transaction():
            dropped = conn.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
                "FROM pg_index AS i JOIN pg_class AS t ON t.oid = i.indrelid "
                "WHERE t.relname = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)",
                [list(BIG_TABLES)],
            ).fetchall()
            for name, _definition in dropped:
                conn.execute(f"DROP INDEX {name}")
            for name, sql in STEPS:
                _step(conn, name, sql, params)
            has_disputes = conn.execute(
                "SELECT to_regclass('disputes_dispute') IS NOT NULL"
            ).fetchone()[0]
            if has_disputes:
                for name, sql in DISPUTE_STEPS:
                    _step(conn, name, sql, params)
            else:
                print("  disputes: no disputes.models.Dispute table yet - skipped")
            started = time.perf_counter()
            for _name, definition in dropped:
                conn.execute(definition)
            print(f"  indexes: {time.perf_counter() - started:.1f} s")
            for table in ("orders_user", "orders_shop", "orders_order", "refunds_refundcase"):
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            conn.execute(f"COMMENT ON DATABASE \"{DB_NAME}\" IS '{marker(scale)}'")
        conn.execute("SET session_replication_role = DEFAULT")
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        print(f"  vacuum analyze: {time.perf_counter() - started:.1f} s")
        for table in (
            "orders_order",
            "refunds_refundcase",
            "orders_event",
            "disputes_dispute",
            "orders_message",
        ):
            row = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname = %s", [table]
            ).fetchone()
            if row and row[0]:
                n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                print(f"  {table}: {n:,} rows")
        states = conn.execute(
            "SELECT state, count(*) FROM refunds_refundcase GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        print("  cases by state: " + ", ".join(f"{s} {n:,}" for s, n in states))


def _step(conn: psycopg.Connection, name: str, sql: str, params: dict[str, int]) -> None:
    started = time.perf_counter()
    with conn.cursor() as cur:
        for statement in (s for s in sql.split(";\n") if s.strip()):
            cur.execute(statement, params)
    print(f"  {name}: {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--force", action="store_true", help="drop and rebuild the database")
    args = parser.parse_args()
    ensure(args.scale, force=args.force)


if __name__ == "__main__":
    main()
