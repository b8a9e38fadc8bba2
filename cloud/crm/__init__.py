"""The CRM core: profiles and identity, touchpoints, lifecycle, consent and loyalty."""
