#!/bin/sh
echo "this script was read from an encfs mount"
