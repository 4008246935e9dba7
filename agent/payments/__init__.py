"""Payments: handing a pay page over to a processor's hosted checkout, and recording the
payments its webhooks report. Card details never reach this system."""
