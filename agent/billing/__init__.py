"""Billing data: customers, phones and invoices (Peewee), queries over them, CSV import."""
