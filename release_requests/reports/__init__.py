"""Reports the service promises, computed from the audit log and the request data: the daily critical digest,
the customer report for any period (quarterly by default), and the personalised reports customers subscribe to."""
