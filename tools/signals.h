// Signals of the convnd program, and the one file a signal must not leave behind.
//
// The first Ctrl-C (SIGINT) asks the command to stop: interrupted() turns true, the library
// stops between tiles, the command removes what it created and exits 130. Every other signal
// that ends a process and can be caught (SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1,
// SIGUSR2, SIGXCPU, SIGXFSZ), and a second Ctrl-C, ends the process at once, as the signal
// would (same exit status), after removing the output's temporary file if there is one.
#pragma once

namespace convnd::cli {

/// Installs the handlers (idempotent).
void install_signal_handlers();
/// True once SIGINT arrived.
bool interrupted();

/// The temporary file the handlers remove: set when it is about to be created, cleared
/// (nullptr) once it was removed or renamed into place. The path is copied; a path longer than
/// 4095 bytes is not watched.
void watch_temp_file(const char* path);

/// Bracket the rename that puts a finished temporary file in place. In between, a signal is
/// held back (the handler only records it), so the temporary file is never removed after it
/// became the output. begin_commit() returns false, holding nothing back, when the user
/// interrupted: the caller must then abandon the file. end_commit() clears the watched file
/// and delivers a held-back signal (the process ends).
bool begin_commit();
void end_commit();

}  // namespace convnd::cli
