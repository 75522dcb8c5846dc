// mfa-auditor's pages work without this script; it only enhances them.
"use strict";
