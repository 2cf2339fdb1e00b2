#!/usr/bin/perl
# Copy N of the generated mbox for the 1,000,000-post store (BENCHMARKS.md,
# "The archive"): every Message-ID made new (r<N>.), and four-digit years
# in Date headers moved N years back, so the copies are new posts spread
# over more years.
use strict;
use warnings;
my $copy = shift @ARGV or die "usage: archive-copy.pl N < mbox > copy\n";
while (my $line = <STDIN>) {
    $line =~ s/^(Message-ID:\s*<)/$1r$copy./i;
    $line =~ s/^(Date:.*?\b)((?:19|20)\d\d)\b/$1 . ($2 - $copy)/e;
    print $line;
}
