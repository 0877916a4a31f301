# mpi_gossip.sh: test_gossip on 1, 2 and 4 ranks; each passes its own checks against naive
# loops, and all three print the same digests of every result bit.
. "$(dirname "$0")/lib.sh"
bin="${top_builddir:-.}/tests/test_gossip"
for p in 1 2 4; do
    check "test_gossip on $p ranks" sh -c "'$MPIEXEC' $MPIEXEC_FLAGS -n $p '$bin' > '$work/out$p.txt'"
done
check "test_gossip printed digests" test -s "$work/out1.txt"
for p in 2 4; do
    check "1 rank and $p ranks print identical digests" cmp "$work/out1.txt" "$work/out$p.txt"
done
finish
