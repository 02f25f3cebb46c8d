// A component's dependsOn does not reach its children: the engine would not record that they wait
// for it. So each component hands its own dependsOn to every child it creates.
import * as pulumi from "@pulumi/pulumi";

export function inheritedDependsOn(opts: pulumi.ComponentResourceOptions | undefined): pulumi.Resource[] {
    const deps = opts?.dependsOn;
    if (deps === undefined) return [];
    if (Array.isArray(deps)) return deps as pulumi.Resource[];
    if (pulumi.Resource.isInstance(deps)) return [deps];
    throw new Error("components take dependsOn as a plain list of resources");
}
