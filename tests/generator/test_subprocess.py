"""The generator's subprocess kind: every callback subset compiles cleanly,
role is optional (and only 'client'), the state table is asyncio's
SubprocessProtocol order, and a generated protocol runs a real child.

Run by ctest; PROTOGEN is the command under test (bin/protogen), CC a C
compiler; with PROTOGEN_RUNTIME_LIB (the built libprotogen.a) the generated
code also runs, built like the rest (PROTOGEN_SANITIZE=ON: with ASan/UBSan).
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
PROTOGEN = os.environ.get("PROTOGEN", os.path.join(TOP, "bin", "protogen"))
CC = os.environ.get("CC", "cc")
RUNTIME_INCLUDE = os.path.join(TOP, "runtime", "include")
RUNTIME_LIB = os.environ.get("PROTOGEN_RUNTIME_LIB", "")
# What linking libprotogen.a takes besides (-luring with the io_uring backend).
RUNTIME_LIBS = os.environ.get("PROTOGEN_RUNTIME_LIBS", "").split()
SANITIZE = os.environ.get("PROTOGEN_SANITIZE", "").upper() in ("ON", "1", "TRUE", "YES")
CALLBACKS = ("connection_made", "pipe_data_received", "pipe_connection_lost", "process_exited", "connection_lost",
             "pause_writing", "resume_writing")
WARNINGS = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]


def protogen(*args, cwd=None):
    return subprocess.run([PROTOGEN, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


class Subprocess(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="protogen-subprocess-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def generate(self, name, body, handlers=True):
        spec = os.path.join(self.tmp, f"{name}.spec")
        with open(spec, "w") as f:
            f.write(f"protocol {name} {{ {body} }}\n")
        out = os.path.join(self.tmp, name)
        os.mkdir(out)
        args = [spec, "-o", out, "--handlers-dir", out, "-w"]
        if not handlers:
            args += ["--emit", "header,source,bind"]
        r = protogen(*args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def compile(self, out, name):
        for source in (f"{name}.c", f"{name}_bind.c", f"{name}_handlers.c"):
            r = subprocess.run([CC, *WARNINGS, "-fsyntax-only", "-I", RUNTIME_INCLUDE, "-I", out,
                                os.path.join(out, source)], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, f"{source}:\n{r.stderr}")

    def test_every_callback_subset_compiles(self):
        subsets = [(), CALLBACKS] + [(cb,) for cb in CALLBACKS] + [("pipe_data_received", "process_exited"),
                                                                   ("pause_writing", "resume_writing")]
        for n, callbacks in enumerate(subsets):
            for watermarks in ("", "watermarks { high 8KiB; }"):
                with self.subTest(callbacks=callbacks, watermarks=watermarks):
                    name = f"s{n}{'w' if watermarks else ''}"
                    decl = f"callbacks {{ {' '.join(c + ';' for c in callbacks)} }}" if callbacks else ""
                    out = self.generate(name, f"transport subprocess; kind subprocess; {decl} {watermarks}")
                    self.compile(out, name)

    def test_role_is_optional_and_means_client(self):
        a = self.generate("proc", "transport subprocess; kind subprocess; callbacks { process_exited; }")
        b = os.path.join(self.tmp, "b")
        os.mkdir(b)
        spec = os.path.join(self.tmp, "b.spec")
        with open(spec, "w") as f:
            f.write("protocol proc { transport subprocess; role client; kind subprocess; callbacks { process_exited; } }\n")
        self.assertEqual(protogen(spec, "-o", b, "--handlers-dir", b).returncode, 0)
        for f in ("proc.h", "proc.c", "proc_bind.c", "proc_handlers.c"):
            with open(os.path.join(a, f)) as x, open(os.path.join(b, f)) as y:
                self.assertEqual(x.read().replace("proc.spec", "X"), y.read().replace("b.spec", "X"), f)

    def test_state_table_is_asyncios_order(self):
        out = self.generate("order", "transport subprocess; kind subprocess;", handlers=False)
        with open(os.path.join(out, "order.c")) as f:
            text = f.read()
        events = re.search(r"enum order_event \{(.*?)\};", text, re.S).group(1)
        events = [e.strip().rstrip(",")[len("ORDER_EV_"):].lower() for e in events.split("\n")
                  if e.strip().startswith("ORDER_EV_")]
        self.assertEqual(tuple(events), CALLBACKS)
        rows = dict(re.findall(r"/\* (\w+) \*/ \{ ([^}]*) \}", text))
        table = {state: dict(zip(events, [n.strip()[len("ORDER_"):].lower() for n in row.split(",")]))
                 for state, row in rows.items()}
        allowed = {state: {ev: nxt for ev, nxt in row.items() if nxt != "invalid"} for state, row in table.items()}
        self.assertEqual(allowed["new"], {"connection_made": "running"})   # nothing before connection_made
        self.assertEqual(allowed["running"], {"pipe_data_received": "running", "pipe_connection_lost": "running",
                                              "process_exited": "exited", "pause_writing": "running",
                                              "resume_writing": "running"})
        self.assertEqual(allowed["exited"], {"pipe_data_received": "exited", "pipe_connection_lost": "exited",
                                             "connection_lost": "lost", "pause_writing": "exited",
                                             "resume_writing": "exited"})
        self.assertEqual(allowed["lost"], {})   # nothing after connection_lost

    @unittest.skipUnless(RUNTIME_LIB, "PROTOGEN_RUNTIME_LIB not set")
    def test_generated_protocol_runs_a_child(self):
        out = self.generate("runner", "transport subprocess; kind subprocess; callbacks { "
                                      + " ".join(c + ";" for c in CALLBACKS) + " }", handlers=False)
        with open(os.path.join(out, "runner_handlers.c"), "w") as f:
            f.write(HANDLERS)
        with open(os.path.join(out, "main.c"), "w") as f:
            f.write(MAIN)
        exe = os.path.join(out, "runner")
        flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"] if SANITIZE else []
        r = subprocess.run([CC, *WARNINGS, "-g", *flags, "-I", RUNTIME_INCLUDE, "-I", out, "-o", exe,
                            os.path.join(out, "main.c"), os.path.join(out, "runner.c"), os.path.join(out, "runner_bind.c"),
                            os.path.join(out, "runner_handlers.c"), RUNTIME_LIB, *RUNTIME_LIBS, "-lpthread"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "made pipes=0,1,2 pid>0")
        self.assertEqual(lines[1], "reading 1 0 0")
        self.assertEqual(lines[-1], "lost 0 returncode=3")
        middle = sorted(lines[2:-1])
        self.assertEqual(middle, sorted(["data 1 out", "data 2 err", "pipe_lost 0 0", "pipe_lost 1 0",
                                         "pipe_lost 2 0", "exited 3", "stdin-closed 0 0", "limits 0 4096 1024"]))
        self.assertLess(lines.index("data 1 out"), lines.index("pipe_lost 1 0"))
        self.assertLess(lines.index("data 2 err"), lines.index("pipe_lost 2 0"))


# The handlers print each event; the child writes to stdout and stderr, closes
# its stdin, and exits 3.
HANDLERS = r"""
#include <stdio.h>
#include <string.h>
#include "runner.h"

struct runner_session { int events; };
const size_t runner_session_size = sizeof(struct runner_session);

void runner_on_connection_made(runner_conn *conn, struct runner_session *state)
{
    state->events++;
    printf("made pipes=%s%s%s pid%s\n", runner_get_pipe_transport(conn, 0) ? "0" : "",
           runner_get_pipe_transport(conn, 1) ? ",1" : "", runner_get_pipe_transport(conn, 2) ? ",2" : "",
           runner_get_pid(conn) > 0 ? ">0" : "<=0");
    runner_pause_reading(conn, 2);
    printf("reading %d %d %d\n", runner_is_reading(conn, 1), runner_is_reading(conn, 2), runner_is_reading(conn, 0));
    runner_resume_reading(conn, 2);
    (void)runner_set_write_buffer_limits(conn, 4096, PG_LIMIT_DEFAULT);
}

void runner_on_pipe_data_received(runner_conn *conn, struct runner_session *state, int fd, const uint8_t *data, size_t len)
{
    (void)conn;
    state->events++;
    printf("data %d %.*s\n", fd, (int)len, (const char *)data);
}

void runner_on_pipe_connection_lost(runner_conn *conn, struct runner_session *state, int fd, int error)
{
    state->events++;
    printf("pipe_lost %d %d\n", fd, error);
    if (fd == 0)
    {
        size_t high = 0, low = 0;
        /* The child closed its stdin: writes are dropped, as asyncio's; the
         * pipe's last limits (set in connection_made) still tell. */
        printf("stdin-closed %d %d\n", runner_write(conn, "x", 1), runner_write_eof(conn));
        int rc = runner_get_write_buffer_limits(conn, &high, &low);
        printf("limits %d %zu %zu\n", rc, high, low);
    }
}

void runner_on_process_exited(runner_conn *conn, struct runner_session *state)
{
    int rc = 0;
    state->events++;
    if (runner_get_returncode(conn, &rc))
        printf("exited %d\n", rc);
}

void runner_on_connection_lost(runner_conn *conn, struct runner_session *state, int error)
{
    int rc = 0;
    (void)runner_get_returncode(conn, &rc);
    printf("lost %d returncode=%d\n", error, rc);
    fflush(stdout);
    (void)state;
    pg_loop_stop(runner_context(conn));
}

void runner_on_pause_writing(runner_conn *conn, struct runner_session *state) { (void)conn; (void)state; }
void runner_on_resume_writing(runner_conn *conn, struct runner_session *state) { (void)conn; (void)state; }
"""

MAIN = r"""
#include <stdio.h>
#include "runner.h"

int main(void)
{
    pg_loop *loop;
    if (pg_loop_new(&loop) < 0)
        return 1;
    const char *argv[] = { "sh", "-c", "exec 0<&-; printf out; printf err >&2; exit 3", NULL };
    pg_subprocess *proc;
    int rc = runner_exec(loop, argv, loop, &proc);
    if (rc < 0)
        return 2;
    pg_loop_run(loop);
    int returncode = -1;
    if (!pg_subprocess_get_returncode(proc, &returncode) || returncode != 3)
        return 3;
    if (pg_subprocess_kill(proc) != -ESRCH) /* after connection_lost */
        return 4;
    pg_subprocess_release(proc);
    const char *missing[] = { "protogen-no-such-program", NULL };
    if (runner_exec(loop, missing, NULL, NULL) != -ENOENT) /* and its conn is freed: ASan says */
        return 5;
    pg_loop_close(loop);
    return 0;
}
"""

if __name__ == "__main__":
    unittest.main()
