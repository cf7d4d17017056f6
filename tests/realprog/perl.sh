# perl: hashes (insert/delete churn, nested structures), regexes with captures
# and substitutions, string building with repetition/join/sprintf/pack, sort,
# and a large string grown by appends; the digest of everything is compared
# with the same script run without the preload. The script itself checks that
# the library appears in its /proc/self/maps.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lz_need perl
lz_assert_preload_works
export PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 LC_ALL=C

cat >work.pl <<'EOF_PL'
use strict; use warnings;
use Digest::MD5 qw(md5_hex);
my ($base) = @ARGV;
if (defined $base && length $base) {
    open(my $m, '<', '/proc/self/maps') or die;
    my $found = grep { m{/\Q$base\E$} } <$m>;
    print "loaded ", ($found ? 1 : 0), "\n";
}
my $ctx = Digest::MD5->new;
my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }

# 1. hash churn
my %h;
for my $i (1 .. 200_000) { $h{"key$i-" . rnd() % 1000} = "v" x (rnd() % 64) . $i; }
for my $k (sort keys %h) { delete $h{$k} if length($k) % 3 == 0; }
$h{"new$_"} = [ (1) x ($_ % 20) ] for 1 .. 50_000;
my $n = 0; $n += ref($h{$_}) ? scalar(@{ $h{$_} }) : length($h{$_}) for keys %h;
print "hash keys ", scalar(keys %h), " total $n\n";
$ctx->add(join(",", (sort keys %h)[0 .. 999]));

# 2. nested data
my %tree;
for my $i (1 .. 30_000) {
    my $r = rnd();
    push @{ $tree{ $r % 97 }{ $r % 13 } }, { id => $i, name => "n" . ($r % 1000), tags => [ map { "t$_" } 1 .. ($r % 5) ] };
}
my $cnt = 0; my $tags = 0;
for my $ka (sort { $a <=> $b } keys %tree) {
    for my $kb (sort { $a <=> $b } keys %{ $tree{$ka} }) {
        for my $e (@{ $tree{$ka}{$kb} }) { $cnt++; $tags += @{ $e->{tags} }; $ctx->add($e->{name}); }
    }
}
undef %tree;
print "tree entries $cnt tags $tags\n";

# 3. regex
my $text = join("\n", map { sprintf("%05d user%d\@host%d.example.org GET /path/%x/%s %d", $_, rnd() % 500, rnd() % 20, rnd(), "abc" x ($_ % 7), rnd() % 600) } 1 .. 60_000);
my %status; my %users;
while ($text =~ /^(\d+) (user\d+)\@(host\d+)\S+ GET (\S+) (\d+)$/mg) { $status{$5 % 7}++; $users{$2}++; }
(my $t2 = $text) =~ s/user(\d+)/U<$1>/g;
my @words = split /[\s\/\@.]+/, $t2;
print "regex lines ", length($text), " status ", join(",", map { "$_=$status{$_}" } sort keys %status), " users ", scalar(keys %users), " words ", scalar(@words), "\n";
$ctx->add($t2);

# 4. string building
my $s = "";
for my $i (1 .. 300_000) { $s .= chr(65 + $i % 26); $s .= "-" if $i % 1000 == 0; }
my @parts = split /-/, $s;
my $rev = reverse $s;
my $packed = pack("N*", map { rnd() } 1 .. 100_000);
my @sorted = sort { $a <=> $b } unpack("N*", $packed);
print "strings len ", length($s), " parts ", scalar(@parts), " sorted[500] $sorted[500]\n";
$ctx->add($rev, $packed, join(":", @sorted[0 .. 99]));
print "md5 ", $ctx->hexdigest, "\n";
EOF_PL

lz_log "perl: $(perl -e 'print $^V')"
perl work.pl "" >ref.txt
"${LZ_PRE[@]}" perl work.pl "$LZ_LIB_BASE" >out.txt
lz_expect_eq "perl sees $LZ_LIB_BASE in /proc/self/maps" "loaded 1" "$(head -1 out.txt)"
tail -n +2 out.txt >out.body
lz_expect_same_file "perl workload output and md5" ref.txt out.body
sed 's/^/    /' out.body
lz_done
