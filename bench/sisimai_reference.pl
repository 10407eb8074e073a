#!/usr/bin/perl
# The reference for bench/bounce_agreement.py: Sisimai 4.25 (Debian's libsisimai-perl, BSD-2,
# never a dependency of Sendmill) run over the files named on the command line. One line per
# record Sisimai reports: file, recipient, reason, softbounce (1 soft, 0 hard, -1 neither),
# deliverystatus, smtpcommand, replycode, tab separated; a file it reports nothing for
# gets no line.
use strict;
use warnings;
use Sisimai;

binmode STDOUT, ':encoding(UTF-8)';
for my $path (@ARGV) {
    open(my $fh, '<:raw', $path) or next;
    local $/;
    my $raw = <$fh>;
    close $fh;
    # Sisimai reads mbox input; a bare message needs the From_ line that starts one.
    $raw = "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n" . $raw unless $raw =~ /\AFrom /;
    $raw =~ s/\r\n/\n/g;
    my $records = eval { Sisimai->make(\$raw) } || [];
    for my $e (@$records) {
        my @f = ($path, lc($e->recipient->address // ''), $e->reason // '',
                 $e->softbounce // '', $e->deliverystatus // '', $e->smtpcommand // '',
                 $e->replycode // '');
        s/[\t\r\n]+/ /g for @f;
        print join("\t", @f), "\n";
    }
}
