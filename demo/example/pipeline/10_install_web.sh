#!/bin/sh
# A script deployment: inputs arrive as environment variables, outputs go to
# $heat_outputs_path.<name>, stdout/stderr and the exit status go back to Heat.
set -e
echo "installing $package for $shop_name"
mkdir -p "$www_root"
echo "<h1>$shop_name</h1>" > "$www_root/index.html"
printf 'file://%s/index.html' "$www_root" > "$heat_outputs_path.url"
