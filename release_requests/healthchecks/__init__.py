"""The yearly Health Check: a remote one-business-day audit of a customer's product settings, booked at least
two weeks ahead, one per certificate year, ending in findings with recommendations."""
