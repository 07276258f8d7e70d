"""Shell completion for onexd and onexctl, generated from their argument parsers (bash; zsh via bashcompinit)."""

from __future__ import annotations

import argparse


def _tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """Words valid after each command path: subcommands and options."""
    words: list[str] = []
    out: dict[tuple[str, ...], list[str]] = {}
    for action in parser._actions:  # argparse keeps its structure here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.append(name)
                out.update(_tree(sub, (*path, name)))
        else:
            words += [o for o in action.option_strings if o.startswith("--") or len(action.option_strings) == 1]
    out[path] = sorted(set(words))
    return out


def bash_script(prog: str, parser: argparse.ArgumentParser) -> str:
    tree = _tree(parser)
    cases = "\n".join(f'        "{" ".join(path)}") words="{" ".join(words)}" ;;'
                      for path, words in sorted(tree.items()))
    fn = "_" + prog.replace("-", "_")
    return f"""# bash completion for {prog} (generated: `{prog} completion bash`)
{fn}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} path="" words="" w
    for w in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$w" in -*) ;; *) [ -n "$path" ] && path="$path $w" || path="$w" ;; esac
    done
    while true; do
        case "$path" in
{cases}
        *) if [ "$path" = "${{path% *}}" ]; then path=""; else path="${{path% *}}"; fi; continue ;;
        esac
        break
    done
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    [ ${{#COMPREPLY[@]}} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur"))
}}
complete -F {fn} {prog}
"""
