"""Sample import files shared by the SQLite and PostgreSQL import tests."""

CUSTOMERS = """\
customer_id,name,phone,phone_kind,phone2,phone2_kind
C-100,Dana Whitfield,(416) 555-0123,mobile,,
C-200,Priya Raman,416.555.0188,Cell,+1 416 555 0199,landline
C-300,Tom Becker,4165550155,LANDLINE,,
"""
INVOICES = """\
invoice_number,customer_id,issued_on,due_on,total,balance,currency,status
INV-1042,C-100,2025-02-18,2025-03-04,285.00,285.00,USD,open
INV-2207,C-200,2025-03-01,,"1,250.50",129.5,cad,OPEN
INV-2051,C-200,2024-12-01,2024-12-15,175,0,CAD,paid
"""
