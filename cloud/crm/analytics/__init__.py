"""Behavioural analysis over crm_events: funnels, retention cohorts, paths and trends."""
