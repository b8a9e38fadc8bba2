"""Channel adapters behind one port (base.Channel), chosen by their config's `type`."""
