"""Footfall services: live state, history in the store's calendar, engagement, chain views."""
