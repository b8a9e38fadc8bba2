"""Loyalty: the points ledger with lots and expiry, earning rules, tiers and rewards."""
