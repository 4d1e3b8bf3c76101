"""A softmax that raises with terminal escape codes in its message: colours, a cursor
move that would rewrite the report's line above, a window title, a bell."""


def forward(x):
    raise ValueError(  # HERE
        "\x1b[31mred\x1b[0m alert\x07 \x1b[1A\x1b[2K\x1b]0;owned\x07PASSED\r overwritten"
    )
