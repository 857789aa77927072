"""Make the ledger append-only in the database itself: UPDATE and DELETE of a row raise.

(TRUNCATE, used by test teardown and by nothing in the application, does not fire row triggers.)
"""
from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION loyalty_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'loyalty ledger is append-only: % of entry % refused', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER loyalty_ledger_append_only
    BEFORE UPDATE OR DELETE ON loyalty_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION loyalty_ledger_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS loyalty_ledger_append_only ON loyalty_ledgerentry;
DROP FUNCTION IF EXISTS loyalty_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
