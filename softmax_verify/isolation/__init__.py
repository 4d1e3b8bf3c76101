"""``softmax-verify check``'s trusted parent, with the code under test in a child process.

``verifier`` runs a plan with the target in a child; ``lanes`` and ``lane`` check dtypes
side by side, a verifier process per lane; ``remote`` is the implementation protocol
over the child's channel; ``process`` starts, watches and stops the child; ``wire`` is
the messages both ways; ``linux`` the process controls (prctl) both sides use;
``reaper`` finds and stops every process the child started, whatever its session;
``supervisor`` runs the command line in a process of its own and stops what it leaves.

``child`` holds the only code that runs beside the user's code. Nothing outside this
package imports it (an import contract in pyproject.toml): the parent starts it as a
``python -c`` entry point, never by importing it.
"""
