"""The messaging hub: channels, templates, send-time policy and the dispatcher."""
