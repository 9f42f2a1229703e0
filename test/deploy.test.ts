/**
 * Deployment as written: Dockerfile, compose, Kubernetes manifests, logrotate, engines, the admin bootstrap.
 *
 * The files in test/deploy/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/deploy/bootstrap.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './deploy/bootstrap.test.js'
import './deploy/compose.test.js'
import './deploy/docker.test.js'
import './deploy/engines.test.js'
import './deploy/kubernetes.test.js'
import './deploy/logrotate.test.js'
