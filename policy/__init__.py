"""Pulumi policy pack: the doctor's static checks, enforced at `pulumi preview`/`up`."""
