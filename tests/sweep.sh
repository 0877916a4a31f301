# sweep.sh: placeholder until the sweep work lands; skipped.
exit 77
