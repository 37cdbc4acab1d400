"""What `make deploy` creates on a Prefect server, as code: run `python -m deployments`.

Every part is idempotent: it reads what the server holds, writes only what differs, and
says which it did, so running it again changes nothing.
"""
