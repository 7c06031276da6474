"""release-requests: the premium-support release request system of an antivirus vendor."""
