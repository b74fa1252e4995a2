#pragma once
// Journal entries carry the Swift caller's CODE_FILE/LINE/FUNC fields, not this shim's.
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
