"""One job across several ranks: Mochi's context-parallel plan and the Ray worker group."""
