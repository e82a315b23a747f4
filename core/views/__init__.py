"""One module per view: a frozen *Spec (what the user asked), a frozen *Report (what they see) and build()."""
