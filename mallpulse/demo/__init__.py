"""`mallpulse demo`: the whole system on one machine, on embedded services when none are given."""
