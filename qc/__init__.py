"""The QC runner: a swapped shot measured against its plate."""
