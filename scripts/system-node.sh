# Sourced by scripts that must run on the system Node (20) whatever npm put first on PATH: under
# `npm test` / `npm run bench`, node_modules/.bin comes first, where the node22/node24 packages link
# their own `node`. Sets NODE20 and makes plain `node` be it (a link in target/bin, first on PATH).
NODE20=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/node_modules/' | paste -sd: -) command -v node)
mkdir -p target/bin && ln -sf "$NODE20" target/bin/node && export PATH="$PWD/target/bin:$PATH"
