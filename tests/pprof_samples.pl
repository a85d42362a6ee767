#!/usr/bin/perl
# pprof_samples.pl FILE: the samples of a profile as `go tool pprof -raw`
# reads them, one line per distinct stack and labels:
#   func;func;...(leaf first) [labels] <TAB> value value ...
# with the values of identical keys summed, sorted.  Location ids differ
# between two writers of the same profile; this is what stays.
use strict;
use warnings;

my $file = shift or die "usage: pprof_samples.pl FILE\n";
open(my $fh, '-|', 'go', 'tool', 'pprof', '-raw', $file) or die "go tool pprof: $!\n";
my @lines = <$fh>;
close($fh) or die "go tool pprof -raw $file failed\n";

my (%loc, $cur, $section);
for (@lines) {
	if (/^(Samples|Locations|Mappings):?/) { $section = $1; next; }
	next unless defined $section && $section eq 'Locations';
	if (/^\s*(\d+): 0x[0-9a-f]+ (?:M=\d+ )?(\S+)/) {
		$cur = $1;
		$loc{$cur} = [$2];
	} elsif (defined $cur && /^\s+(\S+) \S+:\d+ s=\d+/) {
		push @{ $loc{$cur} }, $1;
	}
}

my (%sum, $key);
$section = '';
for (@lines) {
	if (/^(Samples|Locations|Mappings):?/) { $section = $1; next; }
	next unless $section eq 'Samples';
	if (/^\s*([-\d ]+):((?: \d+)*)\s*$/) {
		my @v = split ' ', $1;
		my @stack = map { @{ $loc{$_} || ['?'] } } split ' ', $2;
		$key = join(';', @stack);
		push @{ $sum{$key} }, [@v];
	} elsif (defined $key && /^\s+(\S+:\[.*\])\s*$/) {
		# a label line belongs to the sample above it
		my $vals = pop @{ $sum{$key} };
		@{ $sum{$key} } or delete $sum{$key};
		$key .= " $1";
		push @{ $sum{$key} }, $vals;
	}
}
for my $k (sort keys %sum) {
	my @t;
	for my $v (@{ $sum{$k} }) { $t[$_] += $v->[$_] for 0 .. $#$v; }
	print "$k\t@t\n";
}
