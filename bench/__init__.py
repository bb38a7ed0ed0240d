"""`make bench`: figures for the goals in the README's performance section, each beside a same-run baseline."""
